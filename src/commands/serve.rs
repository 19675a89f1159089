//! `node-drain serve`, the daemon's root: reads the config, starts the actors
//! (with a fenced client), the elector, the HTTP server, the admin socket and
//! the alert queue; on leadership it reconciles (resumes the nodes earlier
//! leaders left) before it admits anything. Lost leadership: exit 1 at once
//! (the fence already stops every write). SIGTERM: stop intake, hand the runs
//! over (their nodes stay recorded, orphaned now), release the lease, flush
//! Slack, exit 0.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::serve_role::RoleLabel;
use super::{checked_nodepool, prometheus_client};
use crate::actors::{Actors, Deps};
use crate::alerts::dedupe::Dedupe;
use crate::cli::{GlobalArgs, ServeArgs};
use crate::config::DaemonConfig;
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::ingress::intake::{mailbox, run_queue, watch_token, Daemon};
use crate::k8s::fence::Fence;
use crate::k8s::lease::{Elector, LeaseSettings, Role};
use crate::messages::{FlushNotifications, HandOver, RecoverNodes, Requeue, Target};
use crate::slack::WebhookUrl;

pub async fn run(global: &GlobalArgs, args: ServeArgs) -> Result<i32> {
    let nodepool = checked_nodepool(global)?;
    let config = match &args.config {
        Some(path) => DaemonConfig::load(path).map_err(Error::Usage)?,
        None => DaemonConfig::default(),
    };
    crate::telemetry::metrics::get().config_loaded(true);
    if config.rules.is_empty() {
        warn!("no alert rules (--config): every alert is ignored");
    }
    std::fs::metadata(&args.webhook_token_file).map_err(|e| {
        Error::Usage(format!(
            "--webhook-token-file {}: {e}",
            args.webhook_token_file.display()
        ))
    })?;
    let identity = Identity::from_env();
    let lease_namespace = crate::identity::namespace_or_own(args.lease_namespace.as_deref());
    let lease_id = format!("{lease_namespace}/{}", args.lease_name);
    let fence = Fence::closed();
    let client = crate::k8s::client::fenced(global.kube_config, fence.clone()).await?;
    let elector_client = crate::k8s::client(global.kube_config).await?;
    let actors = crate::actors::start(Deps {
        client: client.clone(),
        prometheus: Some(prometheus_client(global)?),
        karpenter_metrics: global.karpenter_metrics,
        slack: WebhookUrl::parse(&global.slack_webhook_url).map_err(Error::Usage)?,
        cluster: global.cluster_name.clone(),
        eviction_rate: args.opts.eviction_rate,
        eviction_burst: args.opts.eviction_burst,
        identity: identity.clone(),
        fault: crate::actors::node_drain::Fault::from_env(),
        lease: Some(lease_id.clone()),
    });

    let mut lease = LeaseSettings::new(lease_namespace, identity.holder.clone());
    lease.name = args.lease_name.clone();
    let elector = Elector::new(elector_client, lease, fence.clone());
    let (contact, contact_window) = elector.contact();
    let (role_tx, role_rx) = watch::channel(Role::Follower { holder: None });
    let (queue_tx, queue_rx) = mpsc::channel(args.queue_size as usize);
    let shared = Arc::new(RwLock::new(Arc::new(config)));
    let daemon = Arc::new(Daemon {
        actors: actors.clone(),
        config: shared.clone(),
        nodepool,
        opts: args.opts.clone(),
        max_nodes: args.max_nodes as usize,
        role: role_rx.clone(),
        fence: fence.clone(),
        reconciled: AtomicBool::new(false),
        shutting_down: AtomicBool::new(false),
        paused: AtomicBool::new(false),
        queue: queue_tx,
        dedupe: Arc::new(Mutex::new(Dedupe::new(
            Duration::from_secs(12 * 3600),
            100_000,
        ))),
        token: RwLock::new(None),
        contact,
        contact_window,
        rotations: Default::default(),
    });
    daemon
        .rotations
        .configure(crate::rotation::daemon::Setup::for_daemon(
            global,
            &args,
            client.clone(),
            &actors,
            shared.clone(),
        ));
    watch_token(
        daemon.clone(),
        args.webhook_token_file.clone(),
        Duration::from_secs(2),
    );
    let admission = match &args.admission.address {
        Some(address) => Some(crate::graceful::start::start(
            crate::graceful::start::Settings {
                address: address.clone(),
                cert_dir: args.admission.cert_dir.clone(),
                dns_names: args.admission.dns_names.clone(),
                webhook_configuration: args.admission.webhook_configuration.clone(),
            },
            client.clone(),
            shared.clone(),
            role_rx.clone(),
            fence.clone(),
            lease_id.clone(),
            &identity.holder,
        )?),
        None => None,
    };
    crate::silences::install(shared.clone());
    if let Some(path) = &args.config {
        crate::config::watch(path.clone(), shared, Duration::from_secs(2));
    }
    let listener = std::net::TcpListener::bind(&args.http_address)
        .map_err(|e| Error::Usage(format!("--http-address {}: {e}", args.http_address)))?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    if points_at_itself(&global.prometheus_address, address.port()) {
        warn!(
            prometheus = global.prometheus_address.as_str(),
            "PROMETHEUS_ADDRESS is this daemon's own HTTP port (the default): drain-nodepool and plans will fail; set --prometheus-address"
        );
    }
    let server = crate::ingress::http::serve(listener, daemon.clone())
        .map_err(|e| Error::Internal(format!("HTTP server: {e}")))?;
    let http = server.handle();
    actix::spawn(server);
    let admin =
        crate::ingress::admin_socket::bind(&args.admin_socket, args.admin_gid).map_err(|e| {
            Error::Usage(format!(
                "--admin-socket {}: {e}",
                args.admin_socket.display()
            ))
        })?;
    let stop = CancellationToken::new();
    tokio::spawn(crate::ingress::admin_socket::run(
        admin,
        args.admin_socket.clone(),
        daemon.clone(),
        crate::ingress::admin_socket::Options {
            admin_gid: args.admin_gid,
            ..Default::default()
        },
        stop.clone(),
    ));
    tokio::spawn(run_queue(daemon.clone(), queue_rx));
    tokio::spawn(super::serve_node_cache::keep(
        client.clone(),
        daemon.clone(),
        actors.planner.clone(),
        stop.clone(),
    ));
    info!(
        http = %address,
        admin_socket = %args.admin_socket.display(),
        lease = lease_id.as_str(),
        identity = identity.holder.as_str(),
        "node-drain serve: listening"
    );

    let mut election = tokio::spawn(elector.run(role_tx, stop.clone()));
    let label = RoleLabel {
        client: client.clone(),
        own: identity.own_pod.clone(),
    };
    tokio::spawn(reconcile_when_leader(
        daemon.clone(),
        lease_id,
        role_rx.clone(),
        label.clone(),
    ));

    let (signal_tx, signal_rx) = tokio::sync::oneshot::channel::<&'static str>();
    let signal_tx = Mutex::new(Some(signal_tx));
    crate::shutdown::on_signals(move |signal| {
        if let Some(tx) = signal_tx.lock().ok().and_then(|mut t| t.take()) {
            let _ = tx.send(signal);
        }
    });
    tokio::select! {
        ended = &mut election => {
            let reason = match ended {
                Ok(Err(lost)) => lost.to_string(),
                Ok(Ok(())) => "the elector stopped".into(),
                Err(e) => format!("the elector task failed: {e}"),
            };
            error!(reason = reason.as_str(), "leadership lost: exiting so the next leader resumes");
            daemon.shutting_down.store(true, Ordering::SeqCst);
            Ok(1)
        }
        signal = signal_rx => {
            let signal = signal.unwrap_or("signal");
            info!(signal, "shutting down: intake stopped, handing the runs over");
            daemon.shutting_down.store(true, Ordering::SeqCst);
            let handed = actors.planner.send(HandOver).await.unwrap_or_default();
            if !handed.is_empty() {
                info!(nodes = handed.join(",").as_str(), "left recorded for the next leader");
            }
            if *role_rx.borrow() == Role::Leader {
                label.resign().await;
            }
            stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), election).await;
            flush(&actors).await;
            http.stop(true).await;
            if let Some(admission) = admission {
                admission.stop(true).await;
            }
            Ok(0)
        }
    }
}

async fn flush(actors: &Actors) {
    let _ = actors
        .notifier
        .send(FlushNotifications {
            timeout: Duration::from_secs(5),
        })
        .await;
}

/// Each time this process becomes the leader: take over at once every node
/// recorded under this Lease (the previous leader is fenced), finish recorded
/// retirements, then open intake; afterwards, every 10 s, take over nodes
/// whose run stopped beating (a CLI's, or a leader's of another Lease). What
/// this Lease's leaders claimed in a NodePool the config no longer names is
/// given back (restored), at election and when the NodePool leaves the config.
/// Once reconciled, the leader labels its own Pod (see `k8s::role_label`),
/// retried each round until it lands.
async fn reconcile_when_leader(
    daemon: Arc<Daemon>,
    lease: String,
    mut role: watch::Receiver<Role>,
    label: RoleLabel,
) {
    let mut first = true;
    let mut labelled = false;
    let mut managed_before: Vec<String> = vec![];
    loop {
        if *role.borrow() != Role::Leader {
            daemon.reconciled.store(false, Ordering::SeqCst);
            first = true;
            labelled = false;
            if role.changed().await.is_err() {
                return;
            }
            continue;
        }
        let managed = daemon.nodepools();
        // A NodePool gone from the config: its nodes are read once more.
        let pool_left = managed_before.iter().any(|p| !managed.contains(p));
        managed_before = managed.clone();
        let recover = RecoverNodes {
            nodepools: managed,
            lease: Some(lease.clone()),
            elected_now: first,
            all_pools: first || pool_left,
            orphan_after: daemon.opts.orphan_after,
            defaults: daemon.settings(None),
        };
        match daemon.actors.planner.send(recover).await {
            // The planner is gone: the daemon is shutting down. Retrying would
            // spin (every send fails at once), so this loop ends with it.
            Err(e) => {
                info!(error = %mailbox(e), "reconciliation stops: the actors are gone");
                return;
            }
            Ok(Ok(mut done)) => {
                if !(done.resumed.is_empty() && done.retired.is_empty()) {
                    info!(
                        resumed = done.resumed.join(",").as_str(),
                        retired = done.retired.join(",").as_str(),
                        "took over nodes an earlier node-drain left"
                    );
                }
                requeue(&daemon, std::mem::take(&mut done.queued)).await;
                if first {
                    info!("reconciled: admitting alerts and requests");
                    // Unfinished rotations recorded on the managed NodePools go on
                    // (a paused one stays paused; a cancelled one has no record).
                    let pools = daemon.nodepools();
                    daemon
                        .rotations
                        .resume_recorded(&pools, daemon.settings(None))
                        .await;
                }
                first = false;
                daemon.reconciled.store(true, Ordering::SeqCst);
                if !labelled {
                    labelled = label.claim().await;
                }
            }
            Ok(Err(e)) => warn!(error = %e, "reconciliation failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            // The elector is gone (shutdown): `changed` would fail at once on
            // every round, so the loop ends instead of spinning.
            changed = role.changed() => if changed.is_err() { return },
        }
    }
}

/// The requests an earlier leader queued (recorded on their nodes), queued
/// again in their order, as asked then (the rule's settings recorded) under
/// this daemon's NodePools and cap.
async fn requeue(daemon: &Daemon, found: Vec<crate::drain::queued::Found>) {
    if found.is_empty() {
        return;
    }
    let requests = found
        .into_iter()
        .map(|f| {
            let settings = f.record.settings.apply(daemon.settings(None));
            let admit = daemon.admit(
                f.record.action,
                Target::Node(f.node.clone()),
                settings,
                f.record.trigger.clone(),
                None,
            );
            (f, admit)
        })
        .collect();
    if let Err(e) = daemon.actors.planner.send(Requeue(requests)).await {
        warn!(error = %mailbox(e), "could not queue again what an earlier leader queued");
    }
}

/// Whether a Prometheus address is this daemon's own HTTP server (the
/// seed's default, `http://localhost:8080/prometheus`, is, on port 8080).
fn points_at_itself(prometheus: &str, port: u16) -> bool {
    let Ok(url) = reqwest::Url::parse(prometheus) else {
        return false;
    };
    let local = matches!(
        url.host_str(),
        Some("localhost" | "127.0.0.1" | "[::1]" | "0.0.0.0")
    );
    local && url.port_or_known_default() == Some(port)
}

#[cfg(test)]
mod tests {
    use super::points_at_itself;

    #[test]
    fn the_default_prometheus_address_is_the_daemons_own_port() {
        assert!(points_at_itself("http://localhost:8080/prometheus", 8080));
        assert!(!points_at_itself("http://localhost:8080/prometheus", 18080));
        assert!(!points_at_itself(
            "http://prometheus.monitoring.svc:9090",
            8080
        ));
        assert!(!points_at_itself("http://prometheus:8080", 8080));
    }
}
