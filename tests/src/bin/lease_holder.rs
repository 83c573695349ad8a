//! A fleet member that takes a recovery lease and holds it, renewing, until killed: the
//! fault suite (`tests/fleet_faults.rs`) kills it with SIGKILL mid-lease.
//!
//! Arguments: `redis=URL namespace=NS service=NAME instance=NAME lease_ms=N`. Prints
//! `leased fence=N` once it holds the lease, then renews it every fifth of its length.
#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use resilience_control::fleet::{Fleet, FleetConfig};

fn main() -> ExitCode {
    let args: HashMap<String, String> = std::env::args()
        .skip(1)
        .filter_map(|a| a.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let get = |k: &str| args.get(k).cloned().unwrap_or_default();
    let lease = Duration::from_millis(get("lease_ms").parse().unwrap_or(1_000));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            println!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result: Result<(), String> = runtime.block_on(async {
        let config = FleetConfig::new(get("instance"))
            .namespace(get("namespace"))
            .redis_url(get("redis"))
            .publish_every(lease / 10)
            .report_ttl(lease / 2)
            .lease_ttl(lease);
        let fleet = Fleet::connect(config).await.map_err(|e| e.to_string())?;
        let service = get("service");
        let held = loop {
            if let Some(held) = fleet.try_lease(&service).await.map_err(|e| e.to_string())? {
                break held;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        println!("leased fence={}", held.fence);
        let _ = std::io::stdout().flush();
        loop {
            tokio::time::sleep(lease / 5).await;
            if !fleet.renew(&held).await.map_err(|e| e.to_string())? {
                return Err("lost the lease".to_owned());
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("error: {e}");
            ExitCode::from(2)
        }
    }
}
