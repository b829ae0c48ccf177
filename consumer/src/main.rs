use consumer::startup::Consumer;
use voting::configuration::get_configuration;
use voting::telemetry::{get_subscriber, init_subscriber};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_subscriber(get_subscriber("paredao-consumer", "info", std::io::stdout));
    let settings = get_configuration()?;
    let consumer = Consumer::build(settings).await?;
    consumer.run_until_stopped(voting::shutdown::signal()).await
}
