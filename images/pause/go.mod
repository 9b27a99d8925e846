module nbctl.local/images/pause

go 1.19
