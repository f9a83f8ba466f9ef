from tcpdiag.cli.main import main

main()
