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
#[plugin(name = "choice", api = Api)]
enum Choice {
    One,
}

fn main() {}
