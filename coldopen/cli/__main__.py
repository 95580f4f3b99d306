from coldopen.cli.main import run

run()
