use api::startup::Application;
use voting::configuration::get_configuration;
use voting::telemetry::{get_subscriber, init_subscriber};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_subscriber(get_subscriber("paredao-api", "info", std::io::stdout));
    let settings = get_configuration()?;
    let app = Application::build(settings).await?;
    app.run_until_stopped(voting::shutdown::signal()).await
}
