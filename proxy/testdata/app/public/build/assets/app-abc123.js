console.log("hashed")
