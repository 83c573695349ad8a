//! The HTTP handlers on arbitrary requests (method, path with scenario names, headers, body,
//! scenarios for `POST /chaos`): never a panic, never a 500, and never a state change without
//! the admin token.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::Router;
use http::{Method, Request, header};
use libfuzzer_sys::fuzz_target;
use resilience_control::ControlPlane;
use resilience_control::chaos::{ChaosConfig, ChaosEngine};
use resilience_control::http::{AdminToken, HttpConfig, router_with};
use resilience_core::BreakerRegistry;
use resilience_core::chaos::FaultTable;
use tower::ServiceExt;

const TOKEN: &str = "fuzz-admin-token-0123456789";

struct Rig {
    runtime: tokio::runtime::Runtime,
    router: Router,
    chaos: ChaosEngine,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let registry = Arc::new(BreakerRegistry::new());
        let _ = registry.breaker("db");
        let table = Arc::new(
            FaultTable::builder()
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let chaos = ChaosEngine::builder(table)
            .breakers(registry.clone())
            .config(ChaosConfig::default().enabled(true))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let control = runtime.block_on(async {
            ControlPlane::builder()
                .registry(registry)
                .chaos(chaos.clone())
                .spawn()
                .unwrap_or_else(|e| panic!("{e}"))
        });
        let config = HttpConfig::default()
            .admin_token(AdminToken::new(TOKEN).unwrap_or_else(|e| panic!("{e}")));
        Rig {
            router: router_with(control, &config),
            runtime,
            chaos,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (path, body) = text.split_once('\n').unwrap_or((&text, ""));
    let method =
        [Method::GET, Method::POST, Method::DELETE, Method::PUT][usize::from(selector & 3)].clone();
    let content_type = [
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
    ][usize::from((selector >> 2) & 3)];
    let authorized = selector & 0x10 != 0;
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/chaos/{path}")
    };
    let mut request = Request::builder().method(method.clone()).uri(path.as_str());
    if !content_type.is_empty() {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    if authorized {
        request = request.header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    } else if selector & 0x20 != 0 {
        request = request.header(header::AUTHORIZATION, format!("Bearer {}", body.trim()));
    }
    let Ok(request) = request.body(axum::body::Body::from(body.to_owned())) else {
        return; // not a valid URI or header: hyper would never hand it to the router
    };
    let rig = rig();
    let stopped_before = rig.chaos.is_stopped();
    let active_before = rig.chaos.active().len();
    let status = rig.runtime.block_on(async {
        rig.router
            .clone()
            .oneshot(request)
            .await
            .map(|r| r.status())
    });
    let Ok(status) = status;
    assert!(!status.is_server_error(), "{method} {path}: {status}");
    if !authorized {
        assert_eq!(
            rig.chaos.is_stopped(),
            stopped_before,
            "a state change without the token"
        );
        assert_eq!(
            rig.chaos.active().len(),
            active_before,
            "a scenario started or ended without the token"
        );
    }
    if rig.chaos.is_stopped() {
        let _ = rig.chaos.resume();
    }
    // Scenarios a fuzzed `POST /chaos` started would otherwise pile up to the engine's limits.
    for active in rig.chaos.active() {
        let _ = rig.chaos.deactivate(active.scenario.name());
    }
});
