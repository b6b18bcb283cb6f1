import sys

from extract.core.settings import Settings, SettingsError
from extract.core.sources_config import SourcesConfigError

# Commands that must work whatever sources.yml says (starting, stopping, printing the environment, making data).
_WITHOUT_SOURCES = {"up", "down", "env", "generate"}

# The settings and sources.yml first, before the CLI imports its heavy clients (seconds on a busy machine): a
# configuration mistake is one line and exit code 2 at once. The CLI checks them again the same way when it is
# called directly.
try:
    settings = Settings.from_env()
    words = {arg for arg in sys.argv[1:] if not arg.startswith("-")}
    if words and not words & _WITHOUT_SOURCES and not {"-h", "--help"} & set(sys.argv):
        settings.sources()
except (SettingsError, SourcesConfigError) as error:
    print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
    raise SystemExit(2) from None

from extract.cli import main  # noqa: E402 - after the configuration check, on purpose

raise SystemExit(main())
