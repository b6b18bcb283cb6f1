import sys

from extract.core.settings import Settings, SettingsError

# The settings first, before the CLI imports its heavy clients (seconds on a busy machine): a bad variable is
# one line and exit code 2 at once. The CLI checks them again the same way when it is called directly.
try:
    Settings.from_env()
except SettingsError as error:
    print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
    raise SystemExit(2) from None

from extract.cli import main  # after the settings check, on purpose

raise SystemExit(main())
