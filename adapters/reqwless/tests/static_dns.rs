//! `StaticDns` in front of the real transport: a name from the table connects to its fixed
//! address while the request still names the host; unknown names never connect.

mod common;

use core::net::{IpAddr, Ipv4Addr};

use alf::Transport;
use alf::http::{Method, Request};
use alf_reqwless::{ReqwlessTransport, StaticDns};
use common::{Server, TokioTcp, response};
use embedded_io::{Error as _, ErrorKind};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn a_table_name_connects_to_its_address_and_keeps_its_host_header() {
    let server = Server::start(vec![
        response(200, &[], b"named"),
        response(200, &[], b"literal"),
    ])
    .await;
    let port = server.addr.port();
    let hosts = [("Auth.Lan", LOOPBACK)];
    let (tcp, dns) = (TokioTcp, StaticDns::new(&hosts));
    let mut transport = ReqwlessTransport::new(&tcp, &dns);
    let mut rx = [0u8; 256];

    let url = format!("http://auth.lan:{port}/token");
    let r = transport
        .send(&Request::new(Method::Get, &url), &mut rx)
        .await
        .unwrap();
    assert_eq!((r.status, r.body), (200, &b"named"[..]));

    let url = format!("http://127.0.0.1:{port}/x");
    let r = transport
        .send(&Request::new(Method::Get, &url), &mut rx)
        .await
        .unwrap();
    assert_eq!((r.status, r.body), (200, &b"literal"[..]));

    let seen = server.requests();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(
        seen[0].starts_with(&format!("GET /token HTTP/1.1\r\nHost: auth.lan:{port}\r\n")),
        "{}",
        seen[0]
    );
    assert!(
        seen[1].starts_with(&format!("GET /x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n")),
        "{}",
        seen[1]
    );
}

#[tokio::test]
async fn a_name_outside_the_table_is_not_found_and_nothing_is_sent() {
    let server = Server::start(vec![response(200, &[], b"")]).await;
    let (tcp, dns) = (TokioTcp, StaticDns::literals());
    let mut transport = ReqwlessTransport::new(&tcp, &dns);
    let mut rx = [0u8; 64];
    let url = format!("http://localhost:{}/token", server.addr.port());
    let err = transport
        .send(&Request::new(Method::Post, &url), &mut rx)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(server.requests().is_empty());
}
