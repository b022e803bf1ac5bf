//! The load benchmark's ceiling: a bare warp 0.4 server that reads the body and answers 202,
//! nothing else. `cargo run --release -p teflon-server --example bare_warp -- 127.0.0.1:28081`

use warp::Filter;

#[tokio::main]
async fn main() {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 28081)));
    let route = warp::post()
        .and(warp::body::bytes())
        .map(|b: bytes::Bytes| {
            let _ = b.len();
            warp::reply::with_status(r#"{"accepted":1}"#, warp::http::StatusCode::ACCEPTED)
        });
    warp::serve(route).bind(addr).await.run().await;
}
