from notebook_controller.kubectl.cli import main

main()
