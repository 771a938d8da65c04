print("fived-connect")
