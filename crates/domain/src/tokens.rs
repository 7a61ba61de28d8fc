//! Opaque registration tokens (what AWS posts to the seller's fulfillment URL).

use base64::Engine;
use rand::RngCore;

/// 256 random bits, URL-safe base64: unguessable and safe in a form field.
pub fn new_registration_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
