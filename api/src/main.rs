use api::startup::Application;
use voting::configuration::get_configuration;
use voting::telemetry::init_service_telemetry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = get_configuration()?;
    let _logs = init_service_telemetry("paredao-api", &settings.telemetry);
    let app = Application::build(settings).await?;
    app.run_until_stopped(voting::shutdown::signal()).await
}
