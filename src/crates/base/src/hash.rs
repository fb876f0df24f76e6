//! Hex, SHA-256 and random bytes: keys, secrets and ids. Secrets are stored only as their
//! SHA-256; they are 256 random bits, so a plain hash (not a slow password hash) is enough.

use sha2::{Digest, Sha256};

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// SHA-256 of a text, in hex: the stored form of keys and secrets.
pub fn sha256_hex(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

/// Whether `s` looks like what [`sha256_hex`] returns (64 hex digits).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `n` random bytes from the OS, in hex.
#[cfg(feature = "random")]
pub fn random_hex(n: usize) -> Result<String, std::io::Error> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(hex(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_sha256_hex(&sha256_hex("")));
        assert!(!is_sha256_hex("abc"));
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
