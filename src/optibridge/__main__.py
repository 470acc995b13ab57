from optibridge.cli import main

main()
