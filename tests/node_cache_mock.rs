//! The daemon's watched Node cache in-process against the fake API server (no
//! test cluster): once synced, plans and admitted alerts read the nodes from
//! the watch and make no Node LIST; a change another writer makes arrives
//! through the watch and the next plan and admission see it; and a plan right
//! after node-drain's own claim waits for the claim's event (read-your-writes)
//! instead of answering from the node as it was before.

mod fake_api;
mod support;

use std::sync::Arc;
use std::time::Duration;

use node_drain::actors::planner::UseNodeCache;
use node_drain::actors::Actors;
use node_drain::alerts::rules::Action;
use node_drain::k8s::node_cache::NodeCache;
use node_drain::messages::{Admit, Admitted, PlanWave, Target};
use node_drain::plan::candidates::{Candidate, SkipReason};
use node_drain::plan::{AllocateRates, MetricsGeneration, Resource, ResourceUsage};
use serde_json::json;

use fake_api::{Evictions, Shared};

/// Node LISTs made (a GET of one node or a watch is not one).
fn node_lists(fake: &Shared) -> usize {
    fake.lock()
        .unwrap()
        .log
        .iter()
        .filter(|l| *l == "GET /api/v1/nodes")
        .count()
}

async fn synced_cache(client: kube::Client) -> Arc<NodeCache> {
    let cache = Arc::new(NodeCache::start(client, vec!["pool".into()]));
    for _ in 0..200 {
        if cache.ready() {
            return cache;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the node cache never synced");
}

async fn daemon(fake: &Shared) -> (support::http::Server, Actors) {
    // Initialized: the budget counts it.
    fake.lock().unwrap().node["metadata"]["labels"]["karpenter.sh/initialized"] = json!("true");
    let server = fake_api::fake_api(fake.clone()).await;
    let client = fake_api::client(&server).await;
    let actors = fake_api::start(client.clone(), None);
    let cache = synced_cache(client).await;
    actors.planner.send(UseNodeCache(cache)).await.unwrap();
    (server, actors)
}

async fn plan_n1(actors: &Actors) -> Candidate {
    let rates = AllocateRates {
        nodepool: "pool".into(),
        generation: MetricsGeneration::V1,
        memory: ResourceUsage::new(Resource::Memory, 100.0, 10.0).unwrap(),
        cpu: ResourceUsage::new(Resource::Cpu, 100.0, 10.0).unwrap(),
    };
    let plan = actors
        .planner
        .send(PlanWave {
            nodepool: "pool".into(),
            rates: Some(rates),
            target_allocate_rate: 99,
            max_nodes: Some(1),
            nodes: vec![],
            force: false,
            list_named_pods: false,
        })
        .await
        .unwrap()
        .expect("a plan");
    plan.nodes
        .into_iter()
        .map(|n| n.candidate)
        .find(|c| c.node == "n1")
        .expect("n1 is planned")
}

async fn admit(actors: &Actors, target: Target) -> Admitted {
    actors
        .planner
        .send(Admit {
            action: Action::DrainNode,
            target,
            settings: fake_api::settings(),
            trigger: "test".into(),
            nodepools: vec!["pool".into()],
            max_nodes: 10,
            release: None,
        })
        .await
        .unwrap()
        .expect("admitted or not")
}

#[actix_rt::test]
async fn plans_and_admissions_read_the_watch_and_see_others_changes_through_it() {
    let fake = fake_api::fresh(&["a"], Evictions::Allow, json!({}));
    // Above any resourceVersion the other test's writes record (one process).
    fake.lock().unwrap().version = 1_000_000;
    let (_server, actors) = daemon(&fake).await;
    let lists = node_lists(&fake);
    for _ in 0..3 {
        let n1 = plan_n1(&actors).await;
        assert_eq!(n1.skipped, None, "n1 can be drained: {n1:?}");
    }
    // Karpenter taints n1 as disrupted: the watch delivers it.
    fake.lock().unwrap().change_node(|n| {
        n["spec"]["taints"] = json!([{"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}]);
    });
    let mut n1 = plan_n1(&actors).await;
    for _ in 0..100 {
        if n1.skipped.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        n1 = plan_n1(&actors).await;
    }
    assert_eq!(n1.skipped, Some(SkipReason::Disrupted), "{n1:?}");
    for target in [
        Target::Node("n1".into()),
        Target::Labels([("node".to_string(), "n1".to_string())].into()),
    ] {
        let admitted = admit(&actors, target).await;
        assert!(
            matches!(&admitted, Admitted::Ignored { reason, .. } if reason.contains("Karpenter is disrupting")),
            "admission sees the taint from the watch: {admitted:?}"
        );
    }
    assert_eq!(
        node_lists(&fake),
        lists,
        "plans and admissions LISTed nodes: {:#?}",
        fake.lock().unwrap().log
    );
}

#[actix_rt::test]
async fn a_plan_right_after_a_claim_waits_for_the_claims_event() {
    // The pod stays terminating: the run goes on, n1 stays claimed.
    let fake = fake_api::fresh(&["a"], Evictions::Terminating, json!({}));
    let (_server, actors) = daemon(&fake).await;
    assert_eq!(plan_n1(&actors).await.skipped, None);
    let lists = node_lists(&fake);
    // The watch is slow: the claim's event is held back.
    fake.lock().unwrap().hold_node_events = true;
    let admitted = admit(&actors, Target::Node("n1".into())).await;
    assert!(matches!(admitted, Admitted::Started { .. }), "{admitted:?}");
    for _ in 0..200 {
        if !fake.lock().unwrap().node_events.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !fake.lock().unwrap().node_events.is_empty(),
        "the claim PATCH came"
    );
    let release = fake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        release.lock().unwrap().hold_node_events = false;
    });
    let n1 = plan_n1(&actors).await;
    assert_eq!(
        n1.skipped,
        Some(SkipReason::AlreadyDraining),
        "the plan answered from n1 as it was before the claim: {n1:?}"
    );
    assert_eq!(
        node_lists(&fake),
        lists,
        "the plan LISTed instead of waiting for the watch: {:#?}",
        fake.lock().unwrap().log
    );
}
