drop table orders;
drop type order_status;
