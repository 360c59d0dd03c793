from deportwatch.cli.app import main

main()
