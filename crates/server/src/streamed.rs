//! Admin answers streamed while they are produced (usage reports, audit exports), so large
//! ranges never sit in memory: a producer task sends chunks into a small channel and the body
//! yields them as they come. An `Err` chunk aborts the body, which tells the client the answer
//! is incomplete; a closed channel tells the producer the client went away.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::mpsc;

/// Where a producer sends the chunks of a streamed body.
pub type Chunks = mpsc::Sender<Result<Bytes, std::io::Error>>;

/// A response of `content_type` whose body is what is sent on the returned sender, until it
/// is dropped.
pub fn streamed_body(content_type: &'static str) -> (Chunks, Response) {
    let (tx, rx) = mpsc::channel(4);
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let response = ([(http::header::CONTENT_TYPE, content_type)], body).into_response();
    (tx, response)
}

/// One RFC 4180 line (quoting only where a value needs it).
pub fn csv_line<I, S>(cells: I) -> Bytes
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    let mut w = csv::Writer::from_writer(Vec::new());
    if let Err(e) = w.write_record(cells) {
        tracing::error!(error = %e, "csv encoding failed");
    }
    Bytes::from(w.into_inner().unwrap_or_default())
}
