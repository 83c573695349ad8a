//! The chaos [`FaultTable`] against a plain reference model.
//!
//! The model keeps armed scenarios in a `Vec`, validates with its own copy of the rules, and
//! answers checks by filtering and sorting that list. It replays the same random sequence as the
//! table (both are seeded identically and step the same pure generator), so partial rates are
//! compared exactly too.

use std::time::Duration;

use crate::chaos::rng;
use crate::chaos::{
    ChaosError, ErrorCode, Fault, FaultKind, FaultSpec, FaultTable, Resource, Scenario, ScenarioId,
};
use crate::{Clock, ManualClock};

const POINTS: [&str; 6] = ["p0", "p1", "p2", "p3", "p4", "p5"];
const NAMES: [&str; 5] = ["s0", "s1", "s2", "s3", "s4"];
const RATES: [f64; 5] = [1.0, 0.0, 0.5, 0.25, 1.5];
const SEED: u64 = 0x5eed;

/// What one run exercised.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Faults injected, per kind (check order).
    pub injected: [u64; 6],
    /// Scenarios armed.
    pub armed: u64,
    /// Arming refused, per reason: invalid field, outside blast radius, duplicate, stopped,
    /// too many faults.
    pub refused: [u64; 5],
    /// Checks that found an entry expired on the data path.
    pub expired_checks: u64,
    /// Emergency stops.
    pub stops: u64,
}

impl Coverage {
    /// Adds another run's coverage to this one.
    pub fn merge(&mut self, other: &Coverage) {
        for (a, b) in self.injected.iter_mut().zip(other.injected) {
            *a += b;
        }
        for (a, b) in self.refused.iter_mut().zip(other.refused) {
            *a += b;
        }
        self.armed += other.armed;
        self.expired_checks += other.expired_checks;
        self.stops += other.stops;
    }
}

/// Decodes `data` into operations on a real table and the model; panics on the first
/// difference.
///
/// # Panics
///
/// When the table and the model disagree.
pub fn run(data: &[u8]) -> Coverage {
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let clock = ManualClock::new();
    let table = FaultTable::builder()
        .clock(clock.clone())
        .capacity(8)
        .build()
        .expect("constant capacity is valid");
    let points: Vec<_> = POINTS
        .iter()
        .map(|p| table.point(p).expect("room for six points"))
        .collect();
    rng::seed_thread_rng(SEED);
    let mut model = Model {
        rng: rng::seeded(SEED),
        next_id: 1,
        ..Model::default()
    };
    let mut coverage = Coverage::default();

    while let Some(op) = next() {
        let now = clock.now().as_nanos();
        match op % 10 {
            0..=2 => {
                let spec = ArmSpec::decode(&mut next);
                let real = table.arm(spec.scenario());
                let expected = model.arm(&spec, now);
                match (&real, &expected) {
                    (Ok(id), Ok(expected_id)) => {
                        assert_eq!(id.as_u32(), *expected_id, "scenario ids");
                        coverage.armed += 1;
                    }
                    (Err(err), Err(reason)) => {
                        assert_eq!(refusal(err), *reason, "refusal: {err}");
                        coverage.refused[reason.index()] += 1;
                    }
                    _ => panic!("arm diverged: real {real:?}, model {expected:?} for {spec:?}"),
                }
            }
            3..=5 => {
                let p = usize::from(next().unwrap_or(0)) % POINTS.len();
                let real = table.check(points[p]);
                let expected = model.check(p, now, &mut coverage);
                assert_eq!(real, expected, "check at {} (t = {now} ns)", POINTS[p]);
            }
            6 => {
                let step = u64::from(next().unwrap_or(0));
                clock.advance(if step < 128 {
                    Duration::from_millis(step * 97)
                } else {
                    Duration::from_secs(step)
                });
            }
            7 => {
                let which = next().unwrap_or(0);
                if which & 1 == 0 {
                    let name = NAMES[usize::from(which >> 1) % NAMES.len()];
                    let real = table.disarm_name(name).map(ScenarioId::as_u32).ok();
                    assert_eq!(real, model.disarm_name(name), "disarm {name}");
                } else {
                    let id = u32::from(which >> 1) % model.next_id.max(1);
                    let real = table.disarm(ScenarioId(id));
                    assert_eq!(real, model.disarm(id), "disarm id {id}");
                }
            }
            8 => {
                let mut real: Vec<u32> =
                    table.sweep_expired().iter().map(|id| id.as_u32()).collect();
                real.sort_unstable();
                assert_eq!(real, model.sweep(now), "sweep");
            }
            _ => {
                if next().unwrap_or(0) % 3 == 0 {
                    table.resume();
                    model.stopped = false;
                } else {
                    let report = table.emergency_stop();
                    assert_eq!(report.scenarios, model.recs.len(), "scenarios stopped");
                    model.stop();
                    coverage.stops += 1;
                }
            }
        }
        model.compare(&table, clock.now().as_nanos());
    }
    coverage.injected = model.injected;
    coverage
}

/// One arming request, decoded from seven bytes; some are deliberately out of bounds.
#[derive(Clone, Debug)]
struct ArmSpec {
    name: usize,
    target: usize,
    radius: Vec<usize>,
    spec: FaultSpec,
    duration: Duration,
    rate: f64,
}

impl ArmSpec {
    fn decode(next: &mut impl FnMut() -> Option<u8>) -> ArmSpec {
        let mut b = [0u8; 7];
        for byte in &mut b {
            *byte = next().unwrap_or(0);
        }
        let target = usize::from(b[1]) % POINTS.len();
        // Bits 0..6 add points; bit 7 leaves the target out (invalid).
        let mut radius: Vec<usize> = if b[2] & 0x80 == 0 {
            vec![target]
        } else {
            Vec::new()
        };
        radius.extend((0..POINTS.len()).filter(|i| b[2] & (1 << i) != 0));
        let spec = match b[3] % 6 {
            0 => FaultSpec::Latency(Duration::from_millis(u64::from(b[4]) * 25)),
            1 => FaultSpec::Error(ErrorCode(u16::from(b[4]))),
            2 => FaultSpec::Timeout(Duration::from_secs(u64::from(b[4]) * 2)),
            3 => FaultSpec::ResourceExhaustion {
                resource: Resource::ALL[usize::from(b[4]) % 5],
                level: [0.5, 1.0, 0.0, 0.25][usize::from(b[4] >> 3) % 4],
            },
            4 => FaultSpec::BreakerOpen,
            _ => FaultSpec::Partition,
        };
        ArmSpec {
            name: usize::from(b[0]) % NAMES.len(),
            target,
            radius,
            spec,
            duration: Duration::from_secs(u64::from(b[5]) * 2),
            rate: RATES[usize::from(b[6]) % RATES.len()],
        }
    }

    fn scenario(&self) -> Scenario {
        Scenario::new(NAMES[self.name], POINTS[self.target], self.spec)
            .duration(self.duration)
            .rate(self.rate)
            .blast_radius(self.radius.iter().map(|&p| POINTS[p]))
    }
}

/// Why an arming was refused, as the model predicts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    Invalid(&'static str),
    OutsideRadius,
    Duplicate,
    Stopped,
    TooMany(usize),
}

impl Refusal {
    fn index(self) -> usize {
        match self {
            Refusal::Invalid(_) => 0,
            Refusal::OutsideRadius => 1,
            Refusal::Duplicate => 2,
            Refusal::Stopped => 3,
            Refusal::TooMany(_) => 4,
        }
    }
}

fn refusal(err: &ChaosError) -> Refusal {
    match err {
        ChaosError::Invalid { field, .. } => Refusal::Invalid(field),
        ChaosError::TargetOutsideBlastRadius { .. } => Refusal::OutsideRadius,
        ChaosError::DuplicateName { .. } => Refusal::Duplicate,
        ChaosError::EmergencyStopped => Refusal::Stopped,
        ChaosError::TooManyFaults { target, max: 4 } => Refusal::TooMany(
            POINTS
                .iter()
                .position(|p| p == target)
                .unwrap_or(usize::MAX),
        ),
        other => panic!("unexpected refusal {other}"),
    }
}

#[derive(Clone, Debug)]
struct Rec {
    id: u32,
    name: usize,
    kind: FaultKind,
    fault: Fault,
    threshold: u64,
    expiry: u64,
    points: Vec<usize>,
    hits: u64,
}

#[derive(Default)]
struct Model {
    recs: Vec<Rec>,
    stopped: bool,
    next_id: u32,
    rng: u64,
    injected: [u64; 6],
}

impl Model {
    /// The limits, restated: duration (0, 300 s], latency ≤ 5000 ms, rate in [0, 1], timeout
    /// (0, 300 s], level in (0, 1], target inside the radius.
    fn validate(spec: &ArmSpec) -> Result<(), Refusal> {
        let limit = Duration::from_secs(300);
        if spec.duration.is_zero() || spec.duration > limit {
            return Err(Refusal::Invalid("duration"));
        }
        if !(0.0..=1.0).contains(&spec.rate) {
            return Err(Refusal::Invalid("rate"));
        }
        match spec.spec {
            FaultSpec::Latency(d) if d > Duration::from_millis(5000) => {
                return Err(Refusal::Invalid("latency"));
            }
            FaultSpec::Timeout(d) if d.is_zero() || d > limit => {
                return Err(Refusal::Invalid("timeout"));
            }
            FaultSpec::ResourceExhaustion { level, .. } if !(level > 0.0 && level <= 1.0) => {
                return Err(Refusal::Invalid("level"));
            }
            _ => {}
        }
        if !spec.radius.contains(&spec.target) {
            return Err(Refusal::OutsideRadius);
        }
        Ok(())
    }

    fn arm(&mut self, spec: &ArmSpec, now: u64) -> Result<u32, Refusal> {
        Self::validate(spec)?;
        if self.stopped {
            return Err(Refusal::Stopped);
        }
        let id = self.next_id;
        self.next_id += 1;
        if self
            .recs
            .iter()
            .any(|r| r.name == spec.name && r.expiry > now)
        {
            return Err(Refusal::Duplicate);
        }
        // An expired holder of the name is dropped as the name is claimed.
        self.recs.retain(|r| r.name != spec.name);
        let mut points = Vec::new();
        for &p in &spec.radius {
            if !points.contains(&p) {
                points.push(p);
            }
        }
        if let Some(&full) = points
            .iter()
            .find(|&&p| self.recs.iter().filter(|r| r.points.contains(&p)).count() >= 4)
        {
            return Err(Refusal::TooMany(full));
        }
        let fault = match spec.spec {
            FaultSpec::Latency(d) => Fault::Latency(d),
            FaultSpec::Error(code) => Fault::Error(code),
            FaultSpec::Timeout(d) => Fault::Timeout(d),
            FaultSpec::BreakerOpen => Fault::BreakerOpen,
            FaultSpec::ResourceExhaustion { resource, .. } => Fault::ResourceExhausted(resource),
            FaultSpec::Partition => Fault::Partition,
        };
        self.recs.push(Rec {
            id,
            name: spec.name,
            kind: fault.kind(),
            fault,
            threshold: rng::threshold(spec.rate),
            expiry: now + spec.duration.as_nanos() as u64,
            points,
            hits: 0,
        });
        Ok(id)
    }

    fn check(&mut self, point: usize, now: u64, coverage: &mut Coverage) -> Option<Fault> {
        if self.stopped {
            return None;
        }
        let mut here: Vec<usize> = (0..self.recs.len())
            .filter(|&i| self.recs[i].points.contains(&point))
            .collect();
        here.sort_by_key(|&i| (self.recs[i].kind, self.recs[i].id));
        for i in here {
            let r = &mut self.recs[i];
            if now >= r.expiry {
                coverage.expired_checks += 1;
                continue;
            }
            let fires = r.threshold == u64::MAX
                || (r.threshold != 0 && {
                    let (state, draw) = rng::step(self.rng);
                    self.rng = state;
                    draw < r.threshold
                });
            if fires {
                r.hits += 1;
                self.injected[r.kind.index()] += 1;
                return Some(r.fault);
            }
        }
        None
    }

    fn disarm(&mut self, id: u32) -> bool {
        let before = self.recs.len();
        self.recs.retain(|r| r.id != id);
        self.recs.len() != before
    }

    fn disarm_name(&mut self, name: &str) -> Option<u32> {
        let index = self.recs.iter().position(|r| NAMES[r.name] == name)?;
        Some(self.recs.remove(index).id)
    }

    fn sweep(&mut self, now: u64) -> Vec<u32> {
        let mut swept: Vec<u32> = self
            .recs
            .iter()
            .filter(|r| r.expiry <= now)
            .map(|r| r.id)
            .collect();
        self.recs.retain(|r| r.expiry > now);
        swept.sort_unstable();
        swept
    }

    fn stop(&mut self) {
        self.stopped = true;
        self.recs.clear();
    }

    fn compare(&self, table: &FaultTable<ManualClock>, now: u64) {
        assert_eq!(table.is_stopped(), self.stopped, "stopped");
        let entries: usize = self.recs.iter().map(|r| r.points.len()).sum();
        assert_eq!(table.armed_entries(), entries as u64, "armed entries");
        let active: Vec<(String, Duration, u64)> = table
            .active()
            .into_iter()
            .map(|a| (a.scenario.name().to_owned(), a.remaining, a.injections))
            .collect();
        let expected: Vec<(String, Duration, u64)> = self
            .recs
            .iter()
            .filter(|r| r.expiry > now)
            .map(|r| {
                (
                    NAMES[r.name].to_owned(),
                    Duration::from_nanos(r.expiry - now),
                    r.hits,
                )
            })
            .collect();
        assert_eq!(active, expected, "active scenarios");
        for kind in FaultKind::ALL {
            assert_eq!(
                table.injections(kind),
                self.injected[kind.index()],
                "{kind} injections"
            );
        }
    }
}
