//! Requests per second and latency through a protected route, the same route unprotected, and the
//! same route behind an axum-casbin-style layer, side by side in one run on loopback.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml --bin http_load -- [--seconds S] [--rounds R] [--connections C]
//! ```
//!
//! The server runs on one tokio worker thread and the load generator (keep-alive hyper client,
//! `C` connections) on another, so on two cores each has one. The scenarios alternate in rounds
//! so that drift of the machine hits them alike. Every request is checked for status 200.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rbac_axum::{RbacLayer, TrustedHeader, require_permission};
use rbac_core::{Engine, Policy, PolicyDocument};

const USERS: usize = 1_000;

#[require_permission("finance.invoices.read")]
async fn protected() -> &'static str {
    "invoice list"
}

async fn open() -> &'static str {
    "invoice list"
}

fn policy() -> Policy {
    let mut doc = PolicyDocument::default();
    for resource in ["invoices", "payments", "accounts", "journal"] {
        for action in ["read", "create", "update", "delete", "approve"] {
            doc.permissions
                .declare(format!("finance.{resource}.{action}"), "");
        }
    }
    doc.role_mut("viewer")
        .grants
        .push("finance.invoices.read".into());
    let clerk = doc.role_mut("clerk");
    clerk.inherits.push("viewer".into());
    clerk.grants.push("finance.*".into());
    clerk.denies.push("finance.invoices.approve".into());
    for i in 0..USERS {
        doc.assign(
            &format!("user{i}"),
            None,
            if i % 2 == 0 { "viewer" } else { "clerk" },
        );
    }
    Policy::from_document(doc).expect("the benchmark policy is valid")
}

const CASBIN_MODEL: &str = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n\
[role_definition]\ng = _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n\
[matchers]\nm = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act\n";

type SharedEnforcer = Arc<tokio::sync::RwLock<casbin::CachedEnforcer>>;

/// What axum-casbin's layer does per request: take the enforcer's write lock and `enforce_mut`.
async fn casbin_layer(
    State(enforcer): State<SharedEnforcer>,
    request: Request,
    next: Next,
) -> Response {
    use casbin::CoreApi;
    let Some(user) = request
        .headers()
        .get("x-user-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return http::StatusCode::UNAUTHORIZED.into_response();
    };
    let allowed = {
        let mut enforcer = enforcer.write().await;
        enforcer
            .enforce_mut((user.as_str(), "finance.invoices", "read"))
            .unwrap_or(false)
    };
    if allowed {
        next.run(request).await
    } else {
        http::StatusCode::FORBIDDEN.into_response()
    }
}

async fn casbin_enforcer() -> SharedEnforcer {
    use casbin::{CoreApi, MgmtApi};
    let model = casbin::DefaultModel::from_str(CASBIN_MODEL)
        .await
        .expect("model");
    let mut enforcer = casbin::CachedEnforcer::new(model, casbin::MemoryAdapter::default())
        .await
        .expect("enforcer");
    enforcer
        .add_policy(vec![
            "viewer".into(),
            "finance.invoices".into(),
            "read".into(),
        ])
        .await
        .expect("p");
    let links = (0..USERS)
        .map(|i| vec![format!("user{i}"), "viewer".into()])
        .collect();
    enforcer.add_grouping_policies(links).await.expect("g");
    Arc::new(tokio::sync::RwLock::new(enforcer))
}

async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

struct Sample {
    requests: usize,
    seconds: f64,
    latencies_us: Vec<u32>,
}

async fn load(addr: SocketAddr, seconds: f64, connections: usize) -> Sample {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(connections)
        .build_http();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = c;
                while Instant::now() < deadline {
                    let request = http::Request::get(format!("http://{addr}/invoices"))
                        .header("x-user-id", format!("user{}", (i * 7) % USERS))
                        .body(Empty::<Bytes>::new())
                        .expect("request");
                    let sent = Instant::now();
                    let response = client.request(request).await.expect("response");
                    let status = response.status();
                    let _ = response.into_body().collect().await;
                    assert_eq!(
                        status,
                        http::StatusCode::OK,
                        "every request must be allowed"
                    );
                    latencies.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    i += connections;
                }
                latencies
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await.expect("client task"));
    }
    Sample {
        requests: latencies_us.len(),
        seconds: start.elapsed().as_secs_f64(),
        latencies_us,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str, default: f64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let seconds = flag("--seconds", 3.0);
    let rounds = flag("--rounds", 5.0) as usize;
    let connections = flag("--connections", 32.0) as usize;

    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("rt");
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("rt");
    let engine = Engine::new(&policy());
    let addrs = server.block_on(async {
        let unprotected = axum::Router::new().route("/invoices", axum::routing::get(open));
        let protected = rbac_axum::Router::new()
            .route("/invoices", rbac_axum::routing::get(protected))
            .into_inner()
            .layer(RbacLayer::new(engine).trusted_header(TrustedHeader::x_user_id()));
        let enforcer = casbin_enforcer().await;
        let casbin = axum::Router::new()
            .route("/invoices", axum::routing::get(open))
            .route_layer(axum::middleware::from_fn_with_state(enforcer, casbin_layer));
        [
            ("unprotected", serve(unprotected).await),
            ("rbac-axum #[require_permission]", serve(protected).await),
            (
                "axum-casbin style (CachedEnforcer + lock)",
                serve(casbin).await,
            ),
        ]
    });
    println!(
        "{} connections, {rounds} rounds of {seconds} s per scenario, server and client one thread each",
        connections
    );
    let mut results: Vec<(f64, Vec<u32>)> = vec![(0.0, Vec::new()); addrs.len()];
    let mut per_round: Vec<Vec<f64>> = vec![Vec::new(); addrs.len()];
    for round in 0..=rounds {
        for (i, (_, addr)) in addrs.iter().enumerate() {
            let sample = client.block_on(load(
                *addr,
                if round == 0 { 0.5 } else { seconds },
                connections,
            ));
            if round == 0 {
                continue; // warm-up
            }
            per_round[i].push(sample.requests as f64 / sample.seconds);
            results[i].1.extend(sample.latencies_us);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let base = median(&mut per_round[0].clone());
    println!(
        "\n{:<44} {:>12} {:>10} {:>10} {:>10}",
        "scenario", "req/s (med)", "vs open", "p50 µs", "p99 µs"
    );
    for (i, (name, _)) in addrs.iter().enumerate() {
        let rps = median(&mut per_round[i]);
        let latencies = &mut results[i].1;
        latencies.sort_unstable();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        println!(
            "{name:<44} {rps:>12.0} {:>9.1}% {:>10} {:>10}",
            rps * 100.0 / base,
            at(0.5),
            at(0.99)
        );
    }
    drop(server);
}
