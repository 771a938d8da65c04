print("fived")
