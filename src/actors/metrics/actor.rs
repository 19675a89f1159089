use actix::{Actor, Context};

use super::MetricsActor;

impl Actor for MetricsActor {
    type Context = Context<Self>;
}
