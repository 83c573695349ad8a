//! loom model of the retry budget's balance. Run with
//! `RUSTFLAGS="--cfg resilience_loom" cargo test -p resilience-core --lib --release -- loom_`.

use loom::sync::Arc;
use loom::thread;

use super::RetryBudget;
use crate::ManualClock;
use crate::loom_support::{assert_explored, explore};

/// Two callers race to withdraw while a third deposits the one retry two calls earn: never
/// more withdrawals than whole tokens deposited, and none lost (what is not withdrawn stays).
#[test]
fn loom_retry_budget_never_grants_more_than_it_holds() {
    let runs = explore(|| {
        let budget = Arc::new(
            RetryBudget::builder()
                .ratio(0.5)
                .min_per_sec(0)
                .max_balance(10)
                .clock(ManualClock::new())
                .build()
                .unwrap(),
        );
        let depositor = {
            let budget = budget.clone();
            thread::spawn(move || {
                budget.deposit();
                budget.deposit();
            })
        };
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let budget = budget.clone();
                thread::spawn(move || budget.try_withdraw())
            })
            .collect();
        depositor.join().unwrap();
        let granted = takers
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&ok| ok)
            .count() as u32;
        assert!(granted <= 1, "{granted} retries from one token");
        assert_eq!(
            granted + budget.available(),
            1,
            "the token is neither lost nor doubled"
        );
    });
    assert_explored(runs, 10);
}
