<?php echo "never served as source";
