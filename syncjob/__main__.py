from syncjob.cli import main

main()
