//! `Cis::wrap` serves a plain hyper application: the Session service on its
//! paths, every other request through the session layer.

use std::convert::Infallible;

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tower::service_fn;
use tower_cis::auth::{HashCost, UserDirectory};
use tower_cis::{Cis, CisConfig, Session};

async fn hello(request: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let user = request.extensions().get::<Session>().map_or("nobody", |s| s.user()).to_owned();
    Ok(Response::new(Full::from(format!("hello {user}"))))
}

#[tokio::test]
async fn plain_hyper_application_behind_cis_wrap() {
    let users =
        UserDirectory::new().with_cost(HashCost::insecure_fast_for_tests()).with_user("alice", "alice-pw").unwrap();
    let cis = Cis::in_memory(users, CisConfig::default());
    let service = TowerToHyperService::new(cis.wrap(service_fn(hello)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = service.clone();
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let send = |method: &str, path: &str, headers: Vec<(&str, String)>| {
        let mut request = Request::builder().method(method).uri(format!("http://{address}{path}"));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request.body(Empty::new()).unwrap();
        let client = client.clone();
        async move {
            let response = client.request(request).await.unwrap();
            let status = response.status();
            (status, String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap())
        }
    };
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("alice:alice-pw"));
    let (status, id) = send("POST", "/api/session", vec![("authorization", basic.clone())]).await;
    assert_eq!(status, StatusCode::CREATED);
    let id: String = serde_json::from_str(&id).unwrap();

    let (status, body) = send("GET", "/api/vcenter/vm", vec![("vmware-api-session-id", id.clone())]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello alice"));
    let (status, _) = send("GET", "/api/vcenter/vm", vec![]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) =
        send("POST", "/rest/com/vmware/cis/session?~action=get", vec![("vmware-api-session-id", id.clone())]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with(r#"{"value":{"user":"alice""#), "{body}");
    let (status, _) = send("DELETE", "/api/session", vec![("vmware-api-session-id", id.clone())]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send("GET", "/api/vcenter/vm", vec![("vmware-api-session-id", id)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
