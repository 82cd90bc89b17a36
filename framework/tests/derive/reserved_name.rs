use kneedeep::prelude::*;

#[derive(Default)]
struct Api;

#[OpenApi]
impl Api {
    #[oai(path = "/x", method = "get")]
    async fn x(&self) -> PlainText<String> {
        PlainText(String::new())
    }
}

#[derive(Plugin)]
#[plugin(name = "manage", api = Api)]
struct Manage;

fn main() {}
