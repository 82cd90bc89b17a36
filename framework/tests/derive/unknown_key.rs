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
#[plugin(name = "colours", api = Api, colour = "red")]
struct Colours;

fn main() {}
