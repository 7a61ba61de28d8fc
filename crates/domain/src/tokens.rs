//! Opaque registration tokens (what AWS posts to the seller's fulfillment URL).

use base64::Engine;
use rand::RngCore;

/// 256 random bits, URL-safe base64: unguessable and safe in a form field. Never starts with
/// '-', which command-line parsers (the AWS CLI's `--registration-token -abc`) take for a flag.
pub fn new_registration_token() -> String {
    loop {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        if !token.starts_with('-') {
            return token;
        }
    }
}

/// A new access key: (id, secret, session token). Ids look like AWS's (`AKIA` for long-term
/// keys, `ASIA` for temporary ones that need a session token, then 16 of A-Z and 2-7); the
/// secret is 40 characters of base64 (30 random bytes), the session token 64 random bytes.
pub fn new_access_key(with_session_token: bool) -> (String, String, Option<String>) {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut id_bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id_bytes);
    let prefix = if with_session_token { "ASIA" } else { "AKIA" };
    let id: String = prefix
        .chars()
        .chain(
            id_bytes
                .iter()
                .map(|b| ALPHABET[usize::from(b % 32)] as char),
        )
        .collect();
    let secret = random_base64::<30>(&base64::engine::general_purpose::STANDARD);
    let session =
        with_session_token.then(|| random_base64::<64>(&base64::engine::general_purpose::STANDARD));
    (id, secret, session)
}

fn random_base64<const N: usize>(engine: &impl Engine) -> String {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    engine.encode(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn access_keys_look_like_aws_keys() {
        let (id, secret, session) = super::new_access_key(false);
        assert!(id.starts_with("AKIA") && id.len() == 20, "{id}");
        assert!(id[4..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        assert_eq!(secret.len(), 40);
        assert_eq!(session, None);
        let (id, _, session) = super::new_access_key(true);
        assert!(id.starts_with("ASIA"));
        assert!(session.is_some_and(|s| s.len() == 88));
        assert_ne!(
            super::new_access_key(false).0,
            super::new_access_key(false).0
        );
    }

    #[test]
    fn tokens_are_long_unique_and_never_look_like_flags() {
        let tokens: std::collections::HashSet<String> =
            (0..2000).map(|_| super::new_registration_token()).collect();
        assert_eq!(tokens.len(), 2000);
        assert!(tokens.iter().all(|t| t.len() == 43 && !t.starts_with('-')));
    }
}
