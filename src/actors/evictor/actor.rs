use actix::{Actor, Context};

use super::PodEvictorActor;

impl Actor for PodEvictorActor {
    type Context = Context<Self>;
}
