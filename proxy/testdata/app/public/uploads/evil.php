<?php echo "EVIL RAN";
