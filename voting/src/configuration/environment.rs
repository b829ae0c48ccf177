//! `APP_ENVIRONMENT`: which file is layered over `base.yaml`.

/// Which deployment the settings are for (`APP_ENVIRONMENT`, `local` when unset): it names the
/// file layered over `base.yaml`, which must exist. A typo used to run silently on the base
/// settings alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// `./run.sh up`: this machine's stack.
    Local,
    /// The test and browser-test stacks.
    E2e,
    /// Kubernetes, ansible, the container image.
    Production,
    /// docker compose: `production.yaml`'s settings plus the compose network's addresses
    /// (`deploy/config/container.yaml`, mounted over the image's configuration folder).
    Container,
}

impl Environment {
    const ALL: [Environment; 4] =
        [Environment::Local, Environment::E2e, Environment::Production, Environment::Container];

    pub fn name(self) -> &'static str {
        match self {
            Environment::Local => "local",
            Environment::E2e => "e2e",
            Environment::Production => "production",
            Environment::Container => "container",
        }
    }
}

impl std::str::FromStr for Environment {
    type Err = config::ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|e| e.name() == s).ok_or_else(|| {
            config::ConfigError::Message(format!(
                "APP_ENVIRONMENT is '{s}': expected one of local, e2e, production, container"
            ))
        })
    }
}
