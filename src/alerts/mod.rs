//! Alertmanager webhooks, decided without IO: the payload (version 4) and its
//! checks (`payload`), the rules that turn an alert into an action and the node
//! an alert names (`rules`), and at-least-once delivery made idempotent
//! (`dedupe`). The HTTP edge (`crate::ingress::http`) only reads bodies and
//! answers; the PlannerActor admits what comes out.

pub mod dedupe;
pub mod payload;
pub mod rules;

#[cfg(test)]
mod tests;
