//! A TLS server on loopback: a client trusting its CA gets the answer; one that does not gets
//! an error saying how to trust it.

use axum::routing::get;
use axum::Router;

use super::pki::TestCa;
use super::{client_builder_trusting, explain, read_certificates, ServerTls};

#[tokio::test]
async fn https_on_loopback_with_and_without_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("test CA").unwrap();
    let ca_file = dir.path().join("ca.crt");
    ca.write(&ca_file).unwrap();
    let files = ca
        .server(&["127.0.0.1", "localhost"])
        .unwrap()
        .write(dir.path(), "server")
        .unwrap();
    let tls = ServerTls::from_pem_files(&files.cert, &files.key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = tls.listen(listener).unwrap();
    let addr = axum::serve::Listener::local_addr(&listener).unwrap();
    let app = Router::new().route("/hello", get(|| async { "hello over TLS" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("https://{addr}/hello");

    let trusting = client_builder_trusting(&read_certificates(&ca_file).unwrap())
        .build()
        .unwrap();
    let text = trusting
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "hello over TLS");

    let plain = client_builder_trusting(&[]).build().unwrap();
    let error = plain.get(&url).send().await.unwrap_err();
    let explained = explain(&error);
    assert!(
        explained.contains("not trusted") && explained.contains("--ca-cert"),
        "{explained}"
    );
    // A silent client does not stop the others.
    let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let again = trusting.get(&url).send().await.unwrap();
    assert_eq!(again.status(), 200);
}

/// Every connection a plain listener accepts has `TCP_NODELAY` set (see [`super::no_delay`]).
#[tokio::test]
async fn plain_listeners_accept_connections_without_delay() {
    use axum::serve::Listener as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut listener = super::plain(listener);
    let addr = listener.local_addr().unwrap();
    let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (stream, _) = listener.accept().await;
    assert!(stream.nodelay().unwrap());
}

#[test]
fn a_file_without_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "nothing here\n").unwrap();
    let error = read_certificates(&empty).unwrap_err().to_string();
    assert!(error.contains("no CERTIFICATE"), "{error}");
    let missing = ServerTls::from_pem_files(&dir.path().join("none.crt"), &empty).unwrap_err();
    assert!(missing.to_string().contains("none.crt"), "{missing}");
}
