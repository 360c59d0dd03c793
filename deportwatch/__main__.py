from deportwatch.cli import main

main()
