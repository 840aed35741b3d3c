//! Compile-fail cases: every user mistake is one spanned error on the offending token.
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test -p rbac-macros` and review
//! each diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    cases.pass("tests/pass/*.rs");
}
