//! Maintenance windows gate a daemon's rotation waves: outside a window no
//! wave starts (the rotation says what it waits for, once, in the log and in
//! Slack, with the opening in the window's zone), the window's opening starts
//! the first wave (Slack is told again). The window is computed from the
//! test's clock in a non-UTC zone (Asia/Seoul): it opens at the minute two
//! minutes from now. `admin status` shows that next opening.

mod support;

use std::time::Duration;

use jiff::tz::TimeZone;
use serde_json::json;
use support::rotation::*;
use support::slack::FakeSlack;
use support::*;

/// The Slack messages of the rotation held by a closed window, and released.
const HELD: &str = "held: every maintenance window is closed";
const RELEASED: &str = "the maintenance window is open";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wave_starts_before_the_window_opens_and_slack_hears_the_wait_once() {
    let (scene, _) = spread_pool("rotd-window", 2, json!([{"nodes": "2"}])).await;
    let (client, ns, pool) = (&scene.client, &scene.ns, &scene.pool);

    // The minute two minutes from now, on Seoul's wall clock.
    let seoul = TimeZone::get("Asia/Seoul").expect("Asia/Seoul");
    let now = jiff::Timestamp::now().to_zoned(seoul.clone());
    let minute = now
        .datetime()
        .with()
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .expect("a minute");
    let opening_local = (minute + jiff::Span::new().minutes(2))
        .to_zoned(seoul)
        .expect("a Seoul time");
    let config = format!(
        "rules: []\nmaintenanceWindows:\n  - schedule: '{} {} * * *'\n    duration: 10m\n    timeZone: Asia/Seoul\n",
        opening_local.minute(),
        opening_local.hour()
    );
    let opening = opening_local.timestamp();

    let slack = FakeSlack::start().await;
    let lease = unique("rotd-lease");
    let daemon = rotation_daemon(
        &scene,
        &lease,
        &config,
        &["--slack-webhook-url", &slack.url()],
    )
    .await;

    // `admin status` shows the next window, as an instant and on its zone's
    // clock (asserted with Slack's message below: each fails on its own).
    let status = daemon.admin(b"{\"cmd\":\"status\"}\n").await;
    let next_window = json!({"state": "closed", "opens": opening.to_string(), "opensLocal": opening_local.to_string()});

    let started = admin_rotate(&daemon, &pool.name).await;
    assert_eq!(started["started"], json!(true), "{started}");
    let waiting = wait_for(
        "the rotation waiting for the window",
        Duration::from_secs(30),
        || async {
            match daemon_rotation(&daemon, &pool.name).await {
                Some(r) if r["waiting"]["state"] == "waiting-for-window" => Ok(Some(r)),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(
        waiting["waiting"]["opens"],
        json!(opening.to_string()),
        "{waiting}"
    );
    // Slack hears where the rotation stands and when (Seoul time) the window opens.
    let held = slack.first_containing(HELD, Duration::from_secs(30)).await;
    let local = opening_local.strftime("%Y-%m-%d %H:%M").to_string();
    let told = held.as_deref().is_some_and(|held| {
        held.contains(&format!("{local} KST (Asia/Seoul)")) && held.contains("no wave done yet")
    });
    assert!(
        told && status["maintenance"] == next_window,
        "Slack: {:#?}\nstatus: {}\nwanted: {next_window}",
        slack.texts(),
        status["maintenance"]
    );

    // The first sign of a wave: its placeholder pods (capacity first) or a
    // cordon. Neither before the opening.
    let placeholders: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), &ns.name);
    let by_label = kube::api::ListParams::default().labels("node-drain.io/placeholder");
    let first_sign = wait_for(
        "the first wave's start",
        Duration::from_secs(300),
        || async {
            let created = placeholders
                .list(&by_label)
                .await
                .map(|l| l.items)
                .unwrap_or_default()
                .iter()
                .filter_map(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
                .min();
            if let Some(created) = created {
                return Ok(Some(created));
            }
            if pool.nodes().await.iter().any(unschedulable) {
                return Ok(Some(jiff::Timestamp::now()));
            }
            Err(format!("nothing at {}", jiff::Timestamp::now()))
        },
    )
    .await;
    assert!(
        first_sign >= opening,
        "the first wave started at {first_sign}, before the window opened at {opening}"
    );
    let log = daemon.log();
    assert!(
        log.contains(&format!(
            "rotation waiting for the maintenance window opening at {opening}"
        )),
        "{log}"
    );
    wait_no_record(client, &pool.name, Duration::from_secs(400)).await;
    slack
        .first_containing("finished:", Duration::from_secs(30))
        .await;
    // Once each, in order: started (nodes, waves, ETA), held, released, the
    // wave, finished.
    let texts = slack.texts();
    eprintln!("Slack heard:\n{}", texts.join("\n"));
    let at = |needle: &str| {
        let found: Vec<usize> = (0..texts.len())
            .filter(|&i| texts[i].contains(needle))
            .collect();
        assert_eq!(found.len(), 1, "{needle:?} once: {texts:#?}");
        found[0]
    };
    let (held_at, released_at) = (at(HELD), at(RELEASED));
    let (started_at, wave_at) = (at("started: 2 node(s) to replace"), at("wave 1, "));
    let finished_at = at("finished: 2 replaced, 0 skipped, ");
    assert!(
        started_at < held_at
            && held_at < released_at
            && released_at < wave_at
            && wave_at < finished_at,
        "{texts:#?}"
    );
    assert!(
        texts[started_at].contains(" wave(s) expected, ETA about"),
        "{texts:#?}"
    );
    drop(daemon);
    delete_lease(client, &lease).await;
    scene.cleanup().await;
}
