from cadenza.entrypoints.cli import main

main()
