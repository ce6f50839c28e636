from devamb.cli import main

main()
