package main

import "smtrain/model"

func blasName() string { return model.BLASName() }
