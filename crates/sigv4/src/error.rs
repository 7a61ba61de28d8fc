//! Verification failures, each mapped to the error name AWS front ends answer.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    #[error("Missing Authentication Token: sign the request with SigV4 (an Authorization header)")]
    MissingAuthentication,
    #[error("{0}")]
    Incomplete(String),
    #[error("{0}")]
    InvalidSignature(String),
    #[error("{0}")]
    Expired(String),
    #[error("{0}")]
    SessionToken(String),
}

impl SigV4Error {
    pub fn aws_error_name(&self) -> &'static str {
        match self {
            Self::MissingAuthentication => "MissingAuthenticationTokenException",
            Self::Incomplete(_) => "IncompleteSignatureException",
            Self::InvalidSignature(_) | Self::Expired(_) => "InvalidSignatureException",
            Self::SessionToken(_) => "UnrecognizedClientException",
        }
    }
}
