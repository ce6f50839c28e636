from devamb.cli.main import main

main()
