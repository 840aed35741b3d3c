//! Cross-crate tests of the rbac workspace live in `tests/tests/`; this library is empty.
