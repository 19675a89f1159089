//! What a rotation tells people: its start (nodes, waves expected, ETA), a
//! wait for a maintenance window and its end, and its end (the summary),
//! logged and sent to Slack; the end also removes a finished rotation's
//! record from the NodePool.

use chrono::Utc;
use tracing::{info, warn};

use super::gate::GateNews;
use super::{record, RotationDeps, RotationSettings};
use crate::messages::Notify;
use crate::plan::rotation::{expected_waves, RotationRecord, RotationSummary};
use crate::plan::WavePlan;
use crate::slack::{Notice, Progress, RotationNotice};

pub(super) fn announce(
    deps: &RotationDeps,
    settings: &RotationSettings,
    rec: &RotationRecord,
    remaining: &[String],
    plan: &WavePlan,
    resumed: bool,
) {
    let waves = expected_waves(remaining.len(), plan.wave.wave_size);
    let eta = waves.map(|w| rec.wave_estimate() * w as u32);
    info!(nodepool = settings.nodepool.as_str(), run = rec.run_id.as_str(), nodes = remaining.len(), wavesExpected = ?waves, etaSeconds = ?eta.map(|d| d.as_secs()), resumed, "rotation started");
    deps.notifier
        .do_send(Notify(Notice::Rotation(RotationNotice::Started {
            cluster: deps.cluster.clone(),
            nodepool: settings.nodepool.clone(),
            run_id: rec.run_id.clone(),
            nodes: remaining.to_vec(),
            waves_expected: waves,
            eta,
            resumed,
        })));
}

/// The summary; a finished rotation's record is removed, Slack is told.
pub(super) async fn finish(
    deps: &RotationDeps,
    settings: &RotationSettings,
    rec: &RotationRecord,
    finished: bool,
) -> RotationSummary {
    if finished {
        if let Err(e) = record::clear(&deps.client, &settings.nodepool).await {
            warn!(error = %e, "could not remove the rotation record from the NodePool");
        }
    }
    let elapsed = (Utc::now() - rec.started_at).to_std().unwrap_or_default();
    let summary = rec.summary(&settings.nodepool, elapsed, finished);
    info!(
        nodepool = settings.nodepool.as_str(),
        run = rec.run_id.as_str(),
        replaced = summary.replaced.len(),
        skipped = summary.skipped.len(),
        waves = summary.waves,
        seconds = elapsed.as_secs(),
        finished,
        "rotation over"
    );
    deps.notifier
        .do_send(Notify(Notice::Rotation(RotationNotice::Finished {
            cluster: deps.cluster.clone(),
            nodepool: settings.nodepool.clone(),
            run_id: rec.run_id.clone(),
            duration: elapsed,
            waves: summary.waves,
            replaced: summary.replaced.clone(),
            skipped: summary
                .skipped
                .iter()
                .map(|s| format!("{}: {}", s.node, s.reason))
                .collect(),
            capacity_fallback: summary.capacity_fallback.clone(),
            finished,
        })));
    summary
}

/// Tells Slack what holds the rotation between waves: every maintenance
/// window closed (once a wait, with where the rotation stands and the next
/// opening on its zone's clock), and the opening that releases it.
pub(super) fn gate_news(
    deps: &RotationDeps,
    settings: &RotationSettings,
    rec: &RotationRecord,
    news: GateNews,
) {
    let progress = Progress {
        waves_done: rec.waves.len(),
        replaced: rec.replaced.len(),
        skipped: rec.skipped.len(),
    };
    let (cluster, nodepool, run_id) = (
        deps.cluster.clone(),
        settings.nodepool.clone(),
        rec.run_id.clone(),
    );
    let notice = match news {
        GateNews::WindowHeld { opens } => RotationNotice::WindowHeld {
            cluster,
            nodepool,
            run_id,
            opens,
            progress,
        },
        GateNews::WindowOpened => RotationNotice::WindowOpened {
            cluster,
            nodepool,
            run_id,
            progress,
        },
    };
    deps.notifier.do_send(Notify(Notice::Rotation(notice)));
}
