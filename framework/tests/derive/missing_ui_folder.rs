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
#[plugin(name = "pages", api = Api, ui = "no-such-folder")]
struct Pages;

fn main() {}
