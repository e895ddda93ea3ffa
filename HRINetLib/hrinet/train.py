def add_train_arguments(p):
    pass
