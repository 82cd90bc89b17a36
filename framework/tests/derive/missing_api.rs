use kneedeep::prelude::*;

#[derive(Plugin)]
#[plugin(name = "no-api")]
struct NoApi;

fn main() {}
