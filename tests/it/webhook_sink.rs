//! A local HTTP server that records the JSON bodies posted to it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;

#[derive(Default)]
pub struct Posted(pub Mutex<Vec<serde_json::Value>>);

impl Posted {
    pub fn all(&self) -> Vec<serde_json::Value> {
        self.0.lock().unwrap().clone()
    }
}

pub struct WebhookSink {
    pub address: SocketAddr,
    pub posted: Arc<Posted>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookSink {
    pub async fn start() -> WebhookSink {
        let posted = Arc::new(Posted::default());
        let app = axum::Router::new()
            .route(
                "/hook",
                post(
                    |State(posted): State<Arc<Posted>>, body: axum::body::Bytes| async move {
                        let value: serde_json::Value =
                            serde_json::from_slice(&body).expect("webhook body is JSON");
                        posted.0.lock().unwrap().push(value);
                        "ok"
                    },
                ),
            )
            .with_state(posted.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        WebhookSink {
            address,
            posted,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}
