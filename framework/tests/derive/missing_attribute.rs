use kneedeep::prelude::*;

#[derive(Plugin)]
struct Bare;

fn main() {}
