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

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_long_unique_and_never_look_like_flags() {
        let tokens: std::collections::HashSet<String> =
            (0..2000).map(|_| super::new_registration_token()).collect();
        assert_eq!(tokens.len(), 2000);
        assert!(tokens.iter().all(|t| t.len() == 43 && !t.starts_with('-')));
    }
}
