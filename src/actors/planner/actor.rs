use actix::{Actor, Context};

use super::PlannerActor;

impl Actor for PlannerActor {
    type Context = Context<Self>;
}
