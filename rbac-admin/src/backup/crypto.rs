//! Envelope encryption of chunks.
//!
//! Each backup gets a fresh random 256-bit data key. A chunk's compressed bytes are cut into
//! segments of [`SEGMENT_SIZE`] bytes, each sealed with AES-256-GCM under a nonce made of the
//! chunk index, the segment index and a last-segment flag; the same three and the backup id are
//! the associated data. So a segment moved, dropped, reordered, swapped between chunks or
//! backups, or a chunk cut short, fails authentication. The data key itself is wrapped with age
//! for each recipient (X25519 public keys, or a scrypt passphrase), so a host holding only a
//! public key can write backups it cannot read, and rotating keys re-wraps one small key.

use std::io::{Read, Write};
use std::str::FromStr;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use age::secrecy::SecretString;
use sha2::{Digest, Sha256};

use super::config::EncryptionConfig;
use super::model::{BackupError, BackupId};
use super::model::{Encryption, WrappedKey};

/// Plaintext bytes per sealed segment.
pub(crate) const SEGMENT_SIZE: usize = 64 * 1024;
const TAG: usize = 16;

/// A backup's data key. Never printed, never stored unwrapped.
pub(crate) struct DataKey {
    key: [u8; 32],
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    fn from_bytes(key: [u8; 32]) -> DataKey {
        DataKey {
            cipher: Aes256Gcm::new(&key.into()),
            key,
        }
    }

    /// A fresh random key.
    pub(crate) fn generate() -> Result<DataKey, BackupError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|e| BackupError::Key(format!("cannot get random bytes for a key: {e}")))?;
        Ok(DataKey::from_bytes(key))
    }

    /// A non-secret identifier: the first 16 hex digits of a hash of the key.
    pub(crate) fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"rbac-backup key id v1\0");
        h.update(self.key);
        hex::encode(&h.finalize()[..8])
    }

    fn nonce_aad(backup: &BackupId, chunk: u32, segment: u32, last: bool) -> ([u8; 12], Vec<u8>) {
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&chunk.to_be_bytes());
        nonce[4..8].copy_from_slice(&segment.to_be_bytes());
        nonce[11] = u8::from(last);
        let mut aad = b"rbac-backup v1\0".to_vec();
        aad.extend_from_slice(backup.as_str().as_bytes());
        aad.extend_from_slice(&nonce);
        (nonce, aad)
    }

    /// Seals a chunk's bytes.
    pub(crate) fn seal(
        &self,
        backup: &BackupId,
        chunk: u32,
        plain: &[u8],
    ) -> Result<Vec<u8>, BackupError> {
        let segments = plain.len().div_ceil(SEGMENT_SIZE).max(1);
        let mut out = Vec::with_capacity(plain.len() + segments * TAG);
        for i in 0..segments {
            let start = i * SEGMENT_SIZE;
            let end = (start + SEGMENT_SIZE).min(plain.len());
            let last = i + 1 == segments;
            let index = u32::try_from(i).map_err(|_| BackupError::Key("chunk too large".into()))?;
            let (nonce, aad) = Self::nonce_aad(backup, chunk, index, last);
            let sealed = self
                .cipher
                .encrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: plain.get(start..end).unwrap_or_default(),
                        aad: &aad,
                    },
                )
                .map_err(|_| BackupError::Key("encryption failed".into()))?;
            out.extend_from_slice(&sealed);
        }
        Ok(out)
    }

    /// Opens a sealed chunk; any change, truncation or reordering is an error.
    pub(crate) fn open(
        &self,
        backup: &BackupId,
        chunk: u32,
        sealed: &[u8],
    ) -> Result<Vec<u8>, String> {
        let full = SEGMENT_SIZE + TAG;
        let segments = sealed.len().div_ceil(full).max(1);
        let mut out = Vec::with_capacity(sealed.len());
        for i in 0..segments {
            let start = i * full;
            let end = (start + full).min(sealed.len());
            let last = i + 1 == segments;
            let part = sealed.get(start..end).unwrap_or_default();
            let index = u32::try_from(i).map_err(|_| "chunk too large".to_owned())?;
            let (nonce, aad) = Self::nonce_aad(backup, chunk, index, last);
            let plain = self
                .cipher
                .decrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: part,
                        aad: &aad,
                    },
                )
                .map_err(|_| {
                    format!("segment {i} fails authentication (changed, truncated or reordered)")
                })?;
            out.extend_from_slice(&plain);
        }
        Ok(out)
    }
}

/// Keys as configured: public recipients for writing, identities for reading. Identities are
/// read only when a backup is decrypted, so that a host given only the public key (and a
/// configuration naming key files it does not have) can still create backups.
#[derive(Default)]
pub(crate) struct Keyring {
    recipients: Vec<(String, age::x25519::Recipient)>,
    passphrase: Option<SecretString>,
    identity_files: Vec<std::path::PathBuf>,
    identity_env: Option<String>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field(
                "recipients",
                &self.recipients.iter().map(|r| &r.0).collect::<Vec<_>>(),
            )
            .field("passphrase", &self.passphrase.is_some())
            .field("identity_files", &self.identity_files)
            .field("identity_env", &self.identity_env)
            .finish()
    }
}

fn key_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

impl Keyring {
    /// Loads the configured keys (files and environment variables). Messages name where a key
    /// was expected, never its value.
    pub(crate) fn load(config: Option<&EncryptionConfig>) -> Result<Keyring, BackupError> {
        let Some(config) = config else {
            return Ok(Keyring::default());
        };
        let mut ring = Keyring::default();
        let mut add_recipient = |text: &str, from: &str| -> Result<(), BackupError> {
            let r = age::x25519::Recipient::from_str(text).map_err(|_| {
                BackupError::Key(format!(
                    "{from}: not an age public key (expected `age1...`)"
                ))
            })?;
            ring.recipients.push((text.to_owned(), r));
            Ok(())
        };
        for r in &config.recipients {
            add_recipient(r, "encryption.recipients")?;
        }
        for file in &config.recipient_files {
            let text = std::fs::read_to_string(file).map_err(|e| {
                BackupError::Key(format!(
                    "cannot read recipient file `{}`: {e}",
                    file.display()
                ))
            })?;
            for line in key_lines(&text) {
                add_recipient(line, &file.display().to_string())?;
            }
        }
        if let Some(var) = &config.passphrase_env {
            match std::env::var(var) {
                Ok(p) if !p.is_empty() => ring.passphrase = Some(SecretString::from(p)),
                _ => {
                    return Err(BackupError::Key(format!(
                        "the backup passphrase variable `{var}` is not set"
                    )));
                }
            }
        }
        if let Some(file) = &config.passphrase_file {
            let text = std::fs::read_to_string(file).map_err(|e| {
                BackupError::Key(format!(
                    "cannot read the passphrase file `{}`: {e}",
                    file.display()
                ))
            })?;
            match text.lines().next().map(str::trim_end) {
                Some(p) if !p.is_empty() => {
                    ring.passphrase = Some(SecretString::from(p.to_owned()))
                }
                _ => {
                    return Err(BackupError::Key(format!(
                        "the passphrase file `{}` is empty",
                        file.display()
                    )));
                }
            }
        }
        ring.identity_files = config.identity_files.clone();
        ring.identity_env = config.identity_env.clone();
        Ok(ring)
    }

    /// Reads the configured identities (private keys). Messages name the file or variable,
    /// never a key.
    fn identities(&self) -> Result<Vec<age::x25519::Identity>, BackupError> {
        let mut identities = Vec::new();
        let mut add = |text: &str, from: &str| -> Result<(), BackupError> {
            let id = age::x25519::Identity::from_str(text).map_err(|_| {
                BackupError::Key(format!(
                    "{from}: not an age identity (expected `AGE-SECRET-KEY-1...`)"
                ))
            })?;
            identities.push(id);
            Ok(())
        };
        for file in &self.identity_files {
            let text = std::fs::read_to_string(file).map_err(|e| {
                BackupError::Key(format!(
                    "cannot read identity file `{}`: {e}",
                    file.display()
                ))
            })?;
            for line in key_lines(&text) {
                add(line, &file.display().to_string())?;
            }
        }
        if let Some(var) = &self.identity_env
            && let Ok(text) = std::env::var(var)
        {
            for line in key_lines(&text) {
                add(line, &format!("${var}"))?;
            }
        }
        Ok(identities)
    }

    /// Whether backups are to be encrypted (any recipient or passphrase configured).
    pub(crate) fn encrypts(&self) -> bool {
        !self.recipients.is_empty() || self.passphrase.is_some()
    }

    /// Wraps `key` for every configured recipient.
    pub(crate) fn wrap(&self, key: &DataKey) -> Result<Encryption, BackupError> {
        let mut recipients = Vec::new();
        for (name, r) in &self.recipients {
            let enc = age::Encryptor::with_recipients(std::iter::once(r as &dyn age::Recipient))
                .map_err(|e| BackupError::Key(format!("cannot wrap the data key: {e}")))?;
            recipients.push(WrappedKey {
                recipient: name.clone(),
                wrapped: armor(enc, &key.key)?,
            });
        }
        if let Some(p) = &self.passphrase {
            let enc = age::Encryptor::with_user_passphrase(p.clone());
            recipients.push(WrappedKey {
                recipient: "passphrase".into(),
                wrapped: armor(enc, &key.key)?,
            });
        }
        Ok(Encryption {
            algorithm: "aes-256-gcm".into(),
            segment_size: SEGMENT_SIZE as u32,
            key_id: key.id(),
            recipients,
        })
    }

    /// Unwraps a backup's data key with any configured identity or passphrase.
    pub(crate) fn unwrap(
        &self,
        backup: &BackupId,
        enc: &Encryption,
    ) -> Result<DataKey, BackupError> {
        let identities = self.identities()?;
        if identities.is_empty() && self.passphrase.is_none() {
            return Err(BackupError::Key(format!(
                "backup {backup} is encrypted and no key is configured to read it: set \
                 `encryption.identity_files`, `encryption.identity_env` or `encryption.passphrase_env`"
            )));
        }
        for wrapped in &enc.recipients {
            let is_passphrase = wrapped.recipient == "passphrase";
            let reader = age::armor::ArmoredReader::new(wrapped.wrapped.as_bytes());
            let Ok(decryptor) = age::Decryptor::new(reader) else {
                continue;
            };
            let result = if is_passphrase {
                let Some(p) = &self.passphrase else { continue };
                let id = age::scrypt::Identity::new(p.clone());
                decryptor.decrypt(std::iter::once(&id as &dyn age::Identity))
            } else {
                if identities.is_empty() {
                    continue;
                }
                decryptor.decrypt(identities.iter().map(|i| i as &dyn age::Identity))
            };
            let Ok(mut reader) = result else { continue };
            let mut key = Vec::new();
            if reader.read_to_end(&mut key).is_err() {
                continue;
            }
            let Ok(key) = <[u8; 32]>::try_from(key.as_slice()) else {
                continue;
            };
            let key = DataKey::from_bytes(key);
            if key.id() != enc.key_id {
                return Err(BackupError::Key(format!(
                    "backup {backup}: the unwrapped key does not match the key id in the manifest"
                )));
            }
            return Ok(key);
        }
        let recipients: Vec<&str> = enc
            .recipients
            .iter()
            .map(|r| r.recipient.as_str())
            .collect();
        Err(BackupError::Key(format!(
            "none of the configured keys can decrypt backup {backup} (it is encrypted for: {})",
            recipients.join(", ")
        )))
    }
}

fn armor(enc: age::Encryptor, key: &[u8; 32]) -> Result<String, BackupError> {
    let err = |e: std::io::Error| BackupError::Key(format!("cannot wrap the data key: {e}"));
    let mut out = Vec::new();
    let armored = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(err)?;
    let mut writer = enc.wrap_output(armored).map_err(err)?;
    writer.write_all(key).map_err(err)?;
    writer.finish().and_then(|a| a.finish()).map_err(err)?;
    String::from_utf8(out).map_err(|_| BackupError::Key("armor is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_detect_tampering_truncation_and_moves() {
        let Ok(key) = DataKey::generate() else { return };
        let Ok(id) = "20261123T020000Z-0a1b2c3d".parse::<BackupId>() else {
            return;
        };
        let plain: Vec<u8> = (0..(SEGMENT_SIZE * 2 + 10)).map(|i| i as u8).collect();
        let sealed = key.seal(&id, 3, &plain).unwrap_or_default();
        assert_eq!(key.open(&id, 3, &sealed).ok(), Some(plain.clone()));
        assert!(key.open(&id, 4, &sealed).is_err(), "moved to another chunk");
        let truncated = &sealed[..SEGMENT_SIZE + TAG];
        assert!(
            key.open(&id, 3, truncated).is_err(),
            "cut at a segment boundary"
        );
        let mut flipped = sealed.clone();
        flipped[100] ^= 1;
        assert!(key.open(&id, 3, &flipped).is_err());
        let empty = key.seal(&id, 0, &[]).unwrap_or_default();
        assert_eq!(key.open(&id, 0, &empty).ok(), Some(Vec::new()));
    }
}
